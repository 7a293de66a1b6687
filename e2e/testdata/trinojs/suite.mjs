// Query suite of the official JavaScript Trino client (npm trino-client)
// against duet's SQL gateway. e2e/trinojs_test.go runs it against a real
// server that holds dataset flights (the events of flights.ndjson, the first
// four built into a batch version of view delays, the rest in the speed
// layer only) and view delays (e2e's viewSQL).
//
//	npm ci && node suite.mjs http://127.0.0.1:8080   (or DUET_TRINO_URL)
//
// It prints one JSON line per check, {"check", "ok", "ms", "error"}, and
// exits 1 when any check fails.
import { isDeepStrictEqual } from 'node:util';
import { BasicAuth, Trino } from 'trino-client';

const server = process.argv[2] ?? process.env.DUET_TRINO_URL;
if (!server) {
  console.error('usage: node suite.mjs GATEWAY_URL (or set DUET_TRINO_URL)');
  process.exit(2);
}

const user = 'trinojs';
const source = 'duet-trinojs-suite';
const checkTimeoutMs = 20_000;

function connect(options = {}) {
  return Trino.create({ server, catalog: 'duet', schema: 'views', source, auth: new BasicAuth(user), ...options });
}

// run follows a query to its end and gathers what the client returned.
async function run(client, query) {
  const iter = await client.query(query);
  const out = { id: undefined, columns: undefined, rows: [], pages: 0, error: undefined, state: undefined };
  for await (const doc of iter) {
    out.id = doc.id;
    out.state = doc.stats?.state;
    out.columns ??= doc.columns;
    if (doc.data?.length) {
      for (const row of doc.data) out.rows.push(row);
      out.pages++;
    }
    if (doc.error) out.error = doc.error;
  }
  return out;
}

// rows runs a query that must succeed and returns its rows.
async function rows(client, query) {
  const r = await run(client, query);
  if (r.error) throw new Error(`${JSON.stringify(query)} failed: ${r.error.errorName}: ${r.error.message}`);
  return r.rows;
}

function eq(what, got, want) {
  if (!isDeepStrictEqual(got, want)) {
    throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
}

function columnsOf(r) {
  return (r.columns ?? []).map((c) => [c.name, c.type]);
}

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

check('select 1', async () => {
  const r = await run(connect(), 'SELECT 1 AS one');
  eq('columns', columnsOf(r), [['one', 'integer']]);
  eq('rows', r.rows, [[1]]);
  eq('final state', r.state, 'FINISHED');
});

// The merged view over batch (the first four events) and speed (the rest):
// AMS 10:00 and BER 11:00 each combine both layers.
check('merged view has the exact rows', async () => {
  const r = await run(connect(), 'SELECT * FROM views.delays ORDER BY hour, origin');
  eq('columns', columnsOf(r), [
    ['hour', 'timestamp(6)'], ['origin', 'varchar'], ['flights', 'bigint'], ['total_delay', 'bigint'],
    ['min_delay', 'bigint'], ['max_delay', 'bigint'], ['avg_delay', 'double'],
  ]);
  eq('rows', r.rows, [
    ['2026-10-31 09:00:00.000000', 'JFK', 1, 42, 42, 42, 42],
    ['2026-11-01 10:00:00.000000', 'AMS', 3, 30, 5, 15, 10],
    ['2026-11-01 11:00:00.000000', 'BER', 2, 20, 20, 20, 20],
    ['2026-11-01 23:00:00.000000', 'CDG', 1, -3, -3, -3, -3],
    ['2026-11-02 00:00:00.000000', 'CDG', 1, 7, 7, 7, 7],
  ]);
});

check('raw dataset has every event', async () => {
  const r = await run(connect(), 'SELECT date, delay, origin FROM raw.flights ORDER BY date, origin');
  eq('columns', columnsOf(r), [['date', 'timestamp(6)'], ['delay', 'bigint'], ['origin', 'varchar']]);
  eq('rows', r.rows, [
    ['2026-10-31 09:15:00.000000', 42, 'JFK'],
    ['2026-11-01 10:05:00.000000', 5, 'AMS'],
    ['2026-11-01 10:30:00.000000', 10, 'AMS'],
    ['2026-11-01 10:45:00.250000', 15, 'AMS'],
    ['2026-11-01 11:00:00.000000', null, 'BER'],
    ['2026-11-01 11:20:00.000000', 20, 'BER'],
    ['2026-11-01 23:59:59.999999', -3, 'CDG'],
    ['2026-11-02 00:00:00.000000', 7, 'CDG'],
  ]);
});

check('empty result still has columns', async () => {
  const r = await run(connect(), 'SELECT origin, delay FROM raw.flights WHERE delay > 1000');
  eq('columns', columnsOf(r), [['origin', 'varchar'], ['delay', 'bigint']]);
  eq('rows', r.rows, []);
});

// Every Trino type the gateway encodes (sqlgateway/types.go), written in
// DuckDB's SQL, the gateway's dialect: [column, Trino type, SQL, decoded value].
// Bigints stay within JavaScript's safe integers: the client parses them as
// numbers, as it does from Trino.
const typeCases = [
  ['b', 'boolean', 'true', true],
  ['b_null', 'boolean', 'CAST(NULL AS BOOLEAN)', null],
  ['ti', 'tinyint', 'CAST(-128 AS TINYINT)', -128],
  ['si', 'smallint', 'CAST(-32768 AS SMALLINT)', -32768],
  ['i', 'integer', 'CAST(2147483647 AS INTEGER)', 2147483647],
  ['bi', 'bigint', 'CAST(-9007199254740991 AS BIGINT)', -9007199254740991],
  ['uti', 'smallint', 'CAST(255 AS UTINYINT)', 255],
  ['usi', 'integer', 'CAST(65535 AS USMALLINT)', 65535],
  ['ui', 'bigint', 'CAST(4294967295 AS UINTEGER)', 4294967295],
  ['ubi', 'decimal(20,0)', 'CAST(18446744073709551615 AS UBIGINT)', '18446744073709551615'],
  ['hi', 'bigint', 'CAST(-42 AS HUGEINT)', -42],
  ['uhi', 'decimal(38,0)', "CAST('170141183460469231731687303715884105727' AS UHUGEINT)", '170141183460469231731687303715884105727'],
  ['r', 'real', 'CAST(0.1 AS REAL)', 0.1],
  ['d', 'double', 'CAST(2.25 AS DOUBLE)', 2.25],
  ['d_nan', 'double', "CAST('NaN' AS DOUBLE)", 'NaN'],
  ['d_inf', 'double', "CAST('inf' AS DOUBLE)", 'Infinity'],
  ['r_ninf', 'real', "CAST('-inf' AS REAL)", '-Infinity'],
  ['dec', 'decimal(10,2)', 'CAST(123.45 AS DECIMAL(10,2))', '123.45'],
  ['dec_neg', 'decimal(4,2)', 'CAST(-0.05 AS DECIMAL(4,2))', '-0.05'],
  ['dec_long', 'decimal(38,6)', 'CAST(12345678901234567890.123456 AS DECIMAL(38,6))', '12345678901234567890.123456'],
  ['v', 'varchar', "'héllo \"q\" €' || chr(10) || chr(9) || '\\'", 'héllo "q" €\n\t\\'],
  // DuckDB's CHAR is VARCHAR: no padding.
  ['c', 'varchar', "CAST('ab' AS CHAR(3))", 'ab'],
  ['en', 'varchar', "CAST('y' AS ENUM('x', 'y'))", 'y'],
  ['un', 'varchar', 'union_value(num := 2)::UNION(num INTEGER, str VARCHAR)', '2'],
  ['vb', 'varbinary', "from_hex('0001ff')", 'AAH/'],
  ['dt', 'date', "DATE '2024-02-29'", '2024-02-29'],
  ['dt_old', 'date', "DATE '1969-12-31'", '1969-12-31'],
  ['tm', 'time(6)', "TIME '01:02:03.456789'", '01:02:03.456789'],
  ['tmtz', 'time(6) with time zone', "TIMETZ '01:02:03+05:30'", '01:02:03.000000+05:30'],
  ['ts0', 'timestamp(0)', "CAST(TIMESTAMP '2024-01-02 03:04:05' AS TIMESTAMP_S)", '2024-01-02 03:04:05'],
  ['ts3', 'timestamp(3)', "CAST(TIMESTAMP '2024-01-02 03:04:05.123' AS TIMESTAMP_MS)", '2024-01-02 03:04:05.123'],
  ['ts6', 'timestamp(6)', "TIMESTAMP '2024-01-02 03:04:05.123456'", '2024-01-02 03:04:05.123456'],
  ['ts9', 'timestamp(9)', "CAST('2024-01-02 03:04:05.123456789' AS TIMESTAMP_NS)", '2024-01-02 03:04:05.123456789'],
  ['tstz', 'timestamp(6) with time zone', "TIMESTAMPTZ '2024-01-02 03:04:05.5+02:00'", '2024-01-02 01:04:05.500000 UTC'],
  ['iv', 'interval day to second', 'INTERVAL 1 DAY + INTERVAL 3 HOUR + INTERVAL 4 SECOND', '1 03:00:04.000'],
  ['iv_neg', 'interval day to second', "-INTERVAL '1.5' SECOND", '-0 00:00:01.500'],
  ['arr', 'array(integer)', '[1, 2, NULL]', [1, 2, null]],
  ['arr2', 'array(array(varchar))', "[['a', 'b'], []]", [['a', 'b'], []]],
  ['mp', 'map(varchar, integer)', "MAP {'k2': 20, 'k1': 10}", { k1: 10, k2: 20 }],
  ['mp_int', 'map(integer, double)', 'MAP {1: CAST(1.5 AS DOUBLE)}', { 1: 1.5 }],
  ['rw', 'row(a integer, "b z" varchar)', "{'a': 1, 'b z': 'x'}", [1, 'x']],
  ['nested', 'array(row(p date))', "[{'p': DATE '2024-01-01'}]", [['2024-01-01']]],
  ['js', 'json', 'CAST(\'{"a": [1, 2]}\' AS JSON)', '{"a":[1,2]}'],
  ['uu', 'uuid', "CAST('5b3c1a9e-7f2d-4c8b-9a6e-0d1f2e3a4b5c' AS UUID)", '5b3c1a9e-7f2d-4c8b-9a6e-0d1f2e3a4b5c'],
  ['nul', 'unknown', 'NULL', null],
];

check('every type decodes to its exact value', async () => {
  const sql = 'SELECT ' + typeCases.map(([name, , expr]) => `${expr} AS ${name}`).join(',\n  ');
  const r = await run(connect(), sql);
  if (r.error) throw new Error(`types query failed: ${r.error.errorName}: ${r.error.message}`);
  eq('row count', r.rows.length, 1);
  const failures = [];
  typeCases.forEach(([name, type, , want], i) => {
    const col = r.columns?.[i];
    if (col?.name !== name || col?.type !== type) {
      failures.push(`column ${i} is ${JSON.stringify([col?.name, col?.type])}, want ${JSON.stringify([name, type])}`);
    }
    if (!isDeepStrictEqual(r.rows[0][i], want)) {
      failures.push(`${name} (${type}): got ${JSON.stringify(r.rows[0][i])}, want ${JSON.stringify(want)}`);
    }
  });
  eq('column count', r.columns?.length, typeCases.length);
  if (failures.length) throw new Error(failures.join('; '));
});

check('typeSignature of nested types', async () => {
  const r = await run(connect(), "SELECT MAP {'k': [CAST(1.5 AS DECIMAL(4,1))]} AS m");
  eq('typeSignature', r.columns?.[0]?.typeSignature, {
    rawType: 'map',
    arguments: [
      { kind: 'TYPE', value: { rawType: 'varchar', arguments: [{ kind: 'LONG', value: 2147483647 }] } },
      {
        kind: 'TYPE',
        value: {
          rawType: 'array',
          arguments: [{ kind: 'TYPE', value: { rawType: 'decimal', arguments: [{ kind: 'LONG', value: 4 }, { kind: 'LONG', value: 1 }] } }],
        },
      },
    ],
  });
  eq('rows', r.rows, [[{ k: ['1.5'] }]]);
});

check('paging over 20000 rows', async () => {
  const n = 20_000;
  const r = await run(connect(), `SELECT x, 'row ' || x AS label FROM range(${n}) t(x) ORDER BY x`);
  if (r.error) throw new Error(`${r.error.errorName}: ${r.error.message}`);
  eq('row count', r.rows.length, n);
  let sum = 0;
  r.rows.forEach(([x, label], i) => {
    if (x !== i || label !== `row ${i}`) throw new Error(`row ${i} is ${JSON.stringify([x, label])}: rows lost, repeated or reordered across pages`);
    sum += x;
  });
  eq('sum', sum, (n * (n - 1)) / 2);
  if (r.pages < 2) throw new Error(`${n} rows came in ${r.pages} page(s): expected several pages`);
  eq('aggregate over the same rows', await rows(connect(), `SELECT count(*), sum(x) FROM range(${n}) t(x)`), [[n, (n * (n - 1)) / 2]]);
});

check('syntax error', async () => {
  const sql = 'SELECT origin,\n  count(*\nFROM raw.flights GROUP BY 1';
  const r = await run(connect(), sql);
  if (!r.error) throw new Error(`a malformed statement succeeded with ${JSON.stringify(r.rows)}`);
  const e = r.error;
  eq('error', [e.errorName, e.errorCode, e.errorType], ['SYNTAX_ERROR', 1, 'USER_ERROR']);
  eq('errorLocation', e.errorLocation, { lineNumber: 3, columnNumber: 1 });
  if (!e.message.includes('"FROM"') || e.message.includes('\n')) throw new Error(`message ${JSON.stringify(e.message)}: want one line naming "FROM"`);
  eq('final state', r.state, 'FAILED');
  eq('rows', r.rows, []);
});

check('missing table', async () => {
  const r = await run(connect(), 'SELECT *\nFROM raw.nosuch');
  eq('error', [r.error?.errorName, r.error?.errorCode, r.error?.errorType], ['TABLE_NOT_FOUND', 46, 'USER_ERROR']);
  eq('errorLocation', r.error?.errorLocation, { lineNumber: 2, columnNumber: 6 });
});

async function runningQueries() {
  const res = await fetch(new URL('/metrics', server));
  const text = await res.text();
  const m = text.match(/^duet_sqlgateway_running_queries (\S+)$/m);
  if (!m) throw new Error('GET /metrics has no duet_sqlgateway_running_queries');
  return Number(m[1]);
}

// trino.cancel is DELETE /v1/query/{id}. As against Trino (and as the
// client's own integration tests expect), the query then reports FAILED.
// It is cancelled after its first page, while it waits for the client to
// fetch the rest: the client learns a query's id from its first page.
check('cancel a running query', async () => {
  const trino = connect();
  const iter = await trino.query('SELECT x FROM range(200000) t(x)');
  const first = await iter.next();
  const id = first.value?.id;
  if (first.done || !first.value?.data?.length || !first.value?.nextUri) {
    throw new Error(`no first page of several before cancelling: ${JSON.stringify({ ...first.value, data: undefined })}`);
  }
  eq('running queries before cancel', await runningQueries(), 1);
  await trino.cancel(id);
  const deadline = Date.now() + 5_000;
  while ((await runningQueries()) !== 0) {
    if (Date.now() > deadline) throw new Error('the query still runs 5s after it was cancelled');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  // Trino answers a later poll with the cancellation; answering 404 (the
  // query is gone) is also allowed (notes/trino-protocol.md, C).
  try {
    const next = await iter.next();
    const e = next.value?.error;
    if (next.value?.nextUri || !e) throw new Error(`poll after cancel: ${JSON.stringify({ ...next.value, data: undefined })}`);
    eq('poll after cancel', [e.errorName, e.errorCode], ['USER_CANCELED', 3]);
  } catch (err) {
    if (err.response?.status !== 404) throw err;
  }
  let info;
  try {
    info = await trino.queryInfo(id);
  } catch (err) {
    throw new Error(`queryInfo after cancel: ${err.message} (${JSON.stringify(err.response?.data)}); want the query with state FAILED`);
  }
  eq('queryInfo state after cancel', info.state, 'FAILED');
});

check('SHOW CATALOGS, SCHEMAS, TABLES, COLUMNS', async () => {
  const c = connect();
  const catalogs = await run(c, 'SHOW CATALOGS');
  eq('SHOW CATALOGS columns', columnsOf(catalogs), [['Catalog', 'varchar']]);
  eq('SHOW CATALOGS', catalogs.rows, [['duet']]);
  for (const q of ['SHOW SCHEMAS', 'SHOW SCHEMAS FROM duet']) {
    const names = (await rows(c, q)).map((r) => r[0]);
    for (const s of ['information_schema', 'raw', 'system', 'views']) {
      if (!names.includes(s)) throw new Error(`${q} = ${JSON.stringify(names)}: no ${s}`);
    }
    if (names.some((s) => s.startsWith('__'))) throw new Error(`${q} = ${JSON.stringify(names)}: lists internal schemas`);
    eq(`${q} is sorted and distinct`, names, [...new Set(names)].sort());
  }
  eq('SHOW TABLES', await rows(c, 'SHOW TABLES'), [['delays']]);
  eq('SHOW TABLES FROM raw', await rows(c, 'SHOW TABLES FROM raw'), [['flights']]);
  eq('SHOW TABLES FROM duet.raw', await rows(c, 'SHOW TABLES FROM duet.raw'), [['flights']]);
  const system = (await rows(c, 'SHOW TABLES FROM system')).map((r) => r[0]);
  for (const table of ['datasets', 'freshness', 'jobs', 'view_versions', 'views']) {
    if (!system.includes(table)) throw new Error(`SHOW TABLES FROM system = ${JSON.stringify(system)}: no ${table}`);
  }
  const cols = await run(c, 'SHOW COLUMNS FROM raw.flights');
  eq('SHOW COLUMNS columns', columnsOf(cols), [['Column', 'varchar'], ['Type', 'varchar'], ['Extra', 'varchar'], ['Comment', 'varchar']]);
  eq('SHOW COLUMNS FROM raw.flights', cols.rows, [
    ['date', 'timestamp(6)', '', null], ['delay', 'bigint', '', null], ['origin', 'varchar', '', null],
  ]);
  eq('DESCRIBE delays', (await rows(c, 'DESCRIBE delays')).map((r) => [r[0], r[1]]), [
    ['hour', 'timestamp(6)'], ['origin', 'varchar'], ['flights', 'bigint'], ['total_delay', 'bigint'],
    ['min_delay', 'bigint'], ['max_delay', 'bigint'], ['avg_delay', 'double'],
  ]);
});

check('information_schema', async () => {
  const c = connect();
  const schemata = (await rows(c, "SELECT schema_name FROM information_schema.schemata WHERE catalog_name = 'duet' ORDER BY 1")).map((r) => r[0]);
  for (const s of ['raw', 'system', 'views']) {
    if (!schemata.includes(s)) throw new Error(`information_schema.schemata = ${JSON.stringify(schemata)}: no ${s}`);
  }
  if (schemata.some((s) => s.startsWith('__'))) throw new Error(`information_schema.schemata = ${JSON.stringify(schemata)}: lists internal schemas`);
  const tables = "SELECT table_catalog, table_schema, table_name FROM %s.tables WHERE table_schema IN ('raw', 'views') ORDER BY 2, 3";
  for (const schema of ['information_schema', 'duet.information_schema']) {
    eq(`${schema}.tables`, await rows(c, tables.replace('%s', schema)), [['duet', 'raw', 'flights'], ['duet', 'views', 'delays']]);
  }
  // Column types as Trino names them, the names DESCRIBE and result columns use.
  eq('information_schema.columns', await rows(c,
    "SELECT column_name, data_type, ordinal_position FROM information_schema.columns WHERE table_schema = 'raw' AND table_name = 'flights' ORDER BY ordinal_position"),
  [['date', 'timestamp(6)', 1], ['delay', 'bigint', 2], ['origin', 'varchar', 3]]);
});

check('session catalog and schema', async () => {
  eq('current_catalog, current_schema', await rows(connect(), 'SELECT current_catalog, current_schema'), [['duet', 'views']]);
  eq('unqualified table in session schema views', await rows(connect(), 'SELECT count(*) FROM delays'), [[5]]);
  eq('per-query schema raw', await rows(connect(), { query: 'SELECT count(*) FROM flights', schema: 'raw' }), [[8]]);
  eq('per-query schema system', await rows(connect(), { query: 'SELECT view FROM views', schema: 'system' }), [['delays']]);
  // USE answers with X-Trino-Set-Schema, which the client keeps for its later queries.
  const c = connect();
  await rows(c, 'USE raw');
  eq('after USE raw', await rows(c, 'SELECT count(*) FROM flights'), [[8]]);
  await rows(c, 'USE duet.views');
  eq('after USE duet.views', await rows(c, 'SELECT count(*) FROM delays'), [[5]]);
});

check('session user and source', async () => {
  const c = connect();
  const r = await run(c, 'SELECT count(*) FROM raw.flights');
  const info = await c.queryInfo(r.id);
  eq('queryInfo', [info.queryId, info.state, info.query, info.user, info.source, info.catalog, info.schema],
    [r.id, 'FINISHED', 'SELECT count(*) FROM raw.flights', user, source, 'duet', 'views']);
  const other = await run(c, { query: 'SELECT 2', user: 'bob' });
  eq('per-query user', (await c.queryInfo(other.id)).user, 'bob');
  // As in Trino, current_user is the session user (X-Trino-User).
  eq('current_user', await rows(c, 'SELECT current_user'), [[user]]);
});

check('session properties and time zone', async () => {
  const tz = "SELECT TIMESTAMPTZ '2024-01-02 00:00:00+00:00'";
  eq('time_zone_id session property', await rows(connect({ session: { time_zone_id: 'Asia/Kathmandu' } }), tz),
    [['2024-01-02 05:45:00.000000 Asia/Kathmandu']]);
  eq('X-Trino-Time-Zone', await rows(connect({ extraHeaders: { 'X-Trino-Time-Zone': 'America/New_York' } }), tz),
    [['2024-01-01 19:00:00.000000 America/New_York']]);
  // SET SESSION answers with X-Trino-Set-Session, which the client sends back.
  const c = connect();
  await rows(c, "SET SESSION time_zone_id = 'Europe/Berlin'");
  eq('after SET SESSION', await rows(c, tz), [['2024-01-02 01:00:00.000000 Europe/Berlin']]);
});

check('prepared statement', async () => {
  // PREPARE answers with X-Trino-Added-Prepare; the client sends the
  // statement back in X-Trino-Prepared-Statement.
  const c = connect();
  await rows(c, 'PREPARE late FROM SELECT origin, delay FROM raw.flights WHERE delay > ? ORDER BY delay');
  eq('EXECUTE late USING 14', await rows(c, 'EXECUTE late USING 14'), [['AMS', 15], ['BER', 20], ['JFK', 42]]);
});

let failed = 0;
for (const { name, fn } of checks) {
  const start = Date.now();
  let timer;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${checkTimeoutMs / 1000}s`)), checkTimeoutMs);
      }),
    ]);
    console.log(JSON.stringify({ check: name, ok: true, ms: Date.now() - start }));
  } catch (err) {
    failed++;
    const status = err.response ? ` (HTTP ${err.response.status} ${JSON.stringify(err.response.data)} for ${err.config?.method?.toUpperCase()} ${err.config?.url})` : '';
    console.log(JSON.stringify({ check: name, ok: false, ms: Date.now() - start, error: String(err?.message ?? err) + status }));
  } finally {
    clearTimeout(timer);
  }
}
process.exit(failed ? 1 : 0);
