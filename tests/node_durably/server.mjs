// A real Durably (the TypeScript original, @coji/durably from npm) HTTP server for the tests that
// drive it with durably-reflex's Python client and states (tests/test_node_durably.py).
//
//   node server.mjs <sqlite file> <port>     (port 0: any free one)
//
// Served by serve.mjs (Durably's own `createDurablyHandler` under /api/durably on 127.0.0.1; prints
// `listening <port>`; SIGTERM stops the worker and exits). The jobs mirror the Python test jobs of
// tests/test_client.py.
import { existsSync } from 'node:fs'
import { basename } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

import { z } from 'zod'

import { defineJob, serveDurably } from './serve.mjs'

const [databasePath, portArgument] = process.argv.slice(2)
if (!databasePath || portArgument === undefined) {
  console.error('usage: node server.mjs <sqlite file> <port>')
  process.exit(2)
}

// import-csv: a step per row (its name upper-cased), progress and a log line after each.
const importCsv = defineJob({
  name: 'import-csv',
  input: z.object({
    rows: z.array(z.object({ name: z.string() })),
    delay: z.number().default(0),
  }),
  output: z.object({ imported: z.number(), names: z.array(z.string()) }),
  run: async (step, input) => {
    const names = []
    for (const [index, row] of input.rows.entries()) {
      names.push(
        await step.run(`row-${index}`, async () => {
          await sleep(input.delay * 1000)
          return row.name.toUpperCase()
        }),
      )
      step.progress(index + 1, input.rows.length, `row ${index + 1}`)
      step.log.info(`imported ${row.name}`, { row: index })
    }
    return { imported: names.length, names }
  },
})

// flaky: fails while the flag file exists.
const flaky = defineJob({
  name: 'flaky',
  input: z.object({ flag: z.string() }),
  run: async (step, input) => {
    await step.run('check', () => {
      if (existsSync(input.flag)) throw new Error(`flag ${basename(input.flag)} is up`)
      return true
    })
    return 'ok'
  },
})

// slow-job: `steps` steps of `delay` seconds each, with progress.
const slow = defineJob({
  name: 'slow-job',
  input: z.object({ steps: z.number().default(5), delay: z.number().default(0.2) }),
  run: async (step, input) => {
    for (let index = 0; index < input.steps; index++) {
      await step.run(`tick-${index}`, () => sleep(input.delay * 1000))
      step.progress(index + 1, input.steps)
    }
    return input.steps
  },
})

await serveDurably({
  databasePath,
  port: Number(portArgument),
  jobs: { importCsv, flaky, slow },
  options: {
    pollingIntervalMs: 50,
    leaseRenewIntervalMs: 500,
    leaseMs: 5000,
    maxConcurrentRuns: 4,
    preserveSteps: true, // keep steps after a run settles, as durably-reflex does
  },
})
