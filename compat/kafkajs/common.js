'use strict'
// What the kafkajs scripts share: the kafkajs client as the compat suite configures it (logs
// to stderr, few retries unless said), short group timings, kafkajs's errors as JSON, and
// running one scenario of a script to one JSON line.

const { Kafka, logLevel } = require('kafkajs')

// BOOTSTRAP is a comma-separated broker list.
function makeKafka (bootstrap, retry = { retries: 3, initialRetryTime: 100 }) {
  return new Kafka({
    clientId: 'kbroker-compat-kafkajs',
    brokers: bootstrap.split(','),
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, level, log }) => {
      process.stderr.write(`[${namespace}] ${JSON.stringify(log)}\n`)
    },
    retry
  })
}

// A promise and the function that resolves it (a consumer's run ends when it is called).
function deferred () {
  let resolve
  const promise = new Promise((resolve_) => { resolve = resolve_ })
  return { promise, resolve }
}

// Run `consumer` subscribed as `subscription` ({ topics, fromBeginning }) until `done` is
// called, then leave the group (disconnect). `runConfig(done)` gives consumer.run()'s settings:
// its eachMessage / eachBatch calls done once it has what it waits for. `started()` runs once
// run() has started (kafkajs seeks only then).
async function consumeUntilDone (consumer, subscription, runConfig, started = () => {}) {
  const finished = deferred()
  const config = runConfig(finished.resolve)
  await consumer.connect()
  try {
    await consumer.subscribe(subscription)
    await consumer.run(config)
    started()
    await finished.promise
  } finally {
    await consumer.disconnect()
  }
}

// Run SCENARIOS[name] and print its result as ONE JSON line on stdout, or {"error": {...}}
// and exit 1 when it fails or is not done within deadlineMs.
function runScenario (scenarios, name, deadlineMs) {
  async function main () {
    const fn = scenarios[name]
    if (!fn) throw new Error(`unknown scenario ${name}`)
    const timer = setTimeout(() => {
      process.stdout.write(JSON.stringify({ error: { message: `not done within ${deadlineMs} ms` } }) + '\n')
      process.exit(1)
    }, deadlineMs)
    const result = await fn()
    clearTimeout(timer)
    process.stdout.write(JSON.stringify(result) + '\n')
  }
  main().then(() => process.exit(0), (err) => {
    process.stdout.write(JSON.stringify({ error: describeError(err) }) + '\n')
    process.exit(1)
  })
}

// Kafka's group settings kept short so a fresh group forms quickly (6 s is Kafka's minimum
// session timeout, group.min.session.timeout.ms).
const FAST_GROUP = { sessionTimeout: 6000, heartbeatInterval: 500, rebalanceTimeout: 10000 }

// kafkajs's error with its type and code, and the errors it wraps.
function describeError (err) {
  const out = { name: err.name, message: err.message, type: err.type, code: err.code }
  if (err.errors) out.errors = err.errors.map(describeError)
  if (err.partitions) {
    out.partitions = err.partitions.map((p) => ({
      partition: p.partition, error: p.error ? describeError(p.error) : null
    }))
  }
  if (err.cause) out.cause = describeError(err.cause)
  return out
}

// The error `promise` fails with, described; null if it succeeds.
async function expectError (promise) {
  try {
    await promise
  } catch (err) {
    return describeError(err)
  }
  return null
}

async function withAdmin (kafka, fn) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect()
  }
}

module.exports = {
  makeKafka, FAST_GROUP, consumeUntilDone, describeError, expectError, runScenario, withAdmin
}
