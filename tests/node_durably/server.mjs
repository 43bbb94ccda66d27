// A real Durably (the TypeScript original, @coji/durably from npm) HTTP server for the tests that
// drive it with durably-reflex's Python client and states (tests/test_node_durably.py).
//
//   node server.mjs <sqlite file> <port>     (port 0: any free one)
//
// Serves Durably's own `createDurablyHandler` under /api/durably on 127.0.0.1 through a small
// node:http adapter (Web Request in, Web Response streamed out, the body cancelled when the client
// goes away), over better-sqlite3. Prints `listening <port>` once it accepts connections; SIGTERM
// stops the worker and exits. The jobs mirror the Python test jobs of tests/test_client.py.
import { existsSync } from 'node:fs'
import http from 'node:http'
import { basename } from 'node:path'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'

import { createDurably, createDurablyHandler, defineJob } from '@coji/durably'
import Database from 'better-sqlite3'
import { SqliteDialect } from 'kysely'
import { z } from 'zod'

const BASE_PATH = '/api/durably'
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

const durably = createDurably({
  dialect: new SqliteDialect({ database: new Database(databasePath) }),
  pollingIntervalMs: 50,
  leaseRenewIntervalMs: 500,
  leaseMs: 5000,
  maxConcurrentRuns: 4,
  preserveSteps: true, // keep steps after a run settles, as durably-reflex does
  jobs: { importCsv, flaky, slow },
})
await durably.init()
const handler = createDurablyHandler(durably)

const server = http.createServer(async (req, res) => {
  const abort = new AbortController()
  res.on('close', () => abort.abort())
  try {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD'
    const request = new Request(`http://127.0.0.1${req.url}`, {
      method: req.method,
      headers: Object.entries(req.headers).flatMap(([name, value]) =>
        [value].flat().map((one) => [name, one]),
      ),
      body: hasBody ? Readable.toWeb(req) : undefined,
      duplex: 'half',
      signal: abort.signal,
    })
    const response = await handler.handle(request, BASE_PATH)
    res.writeHead(response.status, [...response.headers].flat())
    res.flushHeaders() // an event stream may stay silent a while: the client has its headers now
    if (!response.body) return res.end()
    const reader = response.body.getReader()
    abort.signal.addEventListener('abort', () => reader.cancel().catch(() => {}))
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      res.write(value)
    }
    res.end()
  } catch (error) {
    if (!res.headersSent) {
      res.writeHead(500, { 'Content-Type': 'application/json' })
      res.end(JSON.stringify({ error: String(error?.message ?? error) }))
    } else {
      res.destroy()
    }
  }
})

async function stop() {
  server.close()
  server.closeAllConnections()
  await durably.stop()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)

server.listen(Number(portArgument), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`)
})
