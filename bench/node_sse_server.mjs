// Durably's own Node server (@coji/durably, the TypeScript original) with bench/sse_jobs.py's W4a
// jobs, for bench/sse.py's peer rows: the same jobs, clients and routes as for durably-reflex.
//
//   node bench/node_sse_server.mjs <sqlite file> <port> <shape JSON>
//
// The shape comes from bench/sse.py, out of sse_jobs.py, so the job's numbers are written in one
// place: {"jobs": {"yield", "cpu", "warmUp"}: names, "steps", "yieldSleepMs", "cpuSpinMs",
// "maxConcurrentRuns", "options": createDurably options beyond those (Durably's defaults otherwise)}.
// Served by tests/node_durably/serve.mjs (the tests' adapter, whose folder holds the npm packages).
import { setTimeout as sleep } from 'node:timers/promises'

import { defineJob, serveDurably, z } from '../tests/node_durably/serve.mjs'

const [databasePath, portArgument, shapeArgument] = process.argv.slice(2)
if (!databasePath || portArgument === undefined || !shapeArgument) {
  console.error('usage: node node_sse_server.mjs <sqlite file> <port> <shape JSON>')
  process.exit(2)
}
const shape = JSON.parse(shapeArgument)

// time.time() as the Python jobs read it: wall-clock seconds to the microsecond. Date.now() has
// whole milliseconds only and performance.timeOrigin may be off the wall clock by a millisecond or
// two, so the monotonic clock is pinned to the wall clock at the instants Date.now() ticks: the
// largest of 20 readings, the one least delayed by a busy machine between its two clock reads.
const wallOffsetMs = (() => {
  let best = -Infinity
  for (let tick = 0; tick < 20; tick++) {
    const first = Date.now()
    let now = first
    while (now === first) now = Date.now()
    best = Math.max(best, now - performance.now())
  }
  return best
})()
const wallSeconds = () => ((wallOffsetMs + performance.now()) / 1000).toFixed(6)

function spin(ms) {
  const until = performance.now() + ms
  while (performance.now() < until) {}
}

// sse_jobs.py's `yielding` and `spinning`: each step is step.run(...) then step.progress(i+1, n,
// the wall clock), the message the benchmark reads each progress event's latency from.
function w4aJob(name, body) {
  return defineJob({
    name,
    input: z.object({}),
    run: async (step) => {
      for (let i = 0; i < shape.steps; i++) {
        await step.run(`s${i}`, () => body(i))
        step.progress(i + 1, shape.steps, wallSeconds())
      }
      return { steps: shape.steps }
    },
  })
}

const jobs = {
  yielding: w4aJob(shape.jobs.yield, async (i) => {
    await sleep(shape.yieldSleepMs)
    return i
  }),
  spinning: w4aJob(shape.jobs.cpu, (i) => {
    spin(shape.cpuSpinMs)
    return i
  }),
  warmUp: defineJob({
    name: shape.jobs.warmUp,
    input: z.object({}),
    run: async (step) => step.run('only', () => 1),
  }),
}

await serveDurably({
  databasePath,
  port: Number(portArgument),
  jobs,
  options: { maxConcurrentRuns: shape.maxConcurrentRuns, ...shape.options },
  keepStatements: true, // a W4a round outlives better-sqlite3 12's finalizer bug on Node 24 (see serve.mjs)
})
