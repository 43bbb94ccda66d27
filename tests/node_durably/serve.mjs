// Serves a Durably (the TypeScript original, @coji/durably from npm) over HTTP, for the tests'
// server (server.mjs) and the benchmark's (bench/node_sse_server.mjs): one adapter in one place.
//
// Durably's own `createDurablyHandler` under /api/durably on 127.0.0.1 through a small node:http
// adapter (Web Request in, Web Response streamed out, the body cancelled when the client goes
// away), over better-sqlite3. Prints `listening <port>` once it accepts connections; SIGTERM stops
// the worker and exits. `defineJob` and `z` are re-exported because the packages resolve from this
// folder's node_modules only: a script elsewhere (the benchmark's) gets them through this module.
import http from 'node:http'
import { Readable } from 'node:stream'

import { createDurably, createDurablyHandler } from '@coji/durably'
import Database from 'better-sqlite3'
import { SqliteDialect } from 'kysely'

export { defineJob } from '@coji/durably'
export { z } from 'zod'

const BASE_PATH = '/api/durably'

// better-sqlite3 12 on Node 24 aborts the process when the garbage collector finalizes a prepared
// statement while Node has no current environment ("Assertion failed: (env) != nullptr" in
// RemoveEnvironmentCleanupHook, from Statement::~Statement). Kysely prepares a statement per query,
// so a busy server meets it within a minute or so; one statement kept per SQL text leaves none to
// finalize (Kysely runs one query at a time on its connection, so a kept statement is never in use
// twice). Python's sqlite3 keeps statements the same way (its cached_statements).
function keepingStatements(database) {
  const kept = new Map()
  const prepare = database.prepare.bind(database)
  database.prepare = (sql) => {
    let statement = kept.get(sql)
    if (!statement) {
      statement = prepare(sql)
      kept.set(sql, statement)
    }
    return statement
  }
  return database
}

/**
 * Starts Durably on the SQLite file `databasePath` with `jobs` and `options` (createDurably's:
 * anything not given keeps Durably's default) and serves it on `port` (0: any free one).
 * `keepStatements`: prepare each SQL text once (see keepingStatements), for long, busy servers.
 */
export async function serveDurably({ databasePath, port, jobs, options, keepStatements = false }) {
  const database = new Database(databasePath)
  const durably = createDurably({
    dialect: new SqliteDialect({ database: keepStatements ? keepingStatements(database) : database }),
    ...options,
    jobs,
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

  server.listen(port, '127.0.0.1', () => {
    console.log(`listening ${server.address().port}`)
  })
}
