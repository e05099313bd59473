'use strict'
// What driver.js and scenarios.js share: the kafkajs client as the compat suite configures
// it (logs to stderr, few retries), short group timings, and kafkajs's errors as JSON.

const { Kafka, logLevel } = require('kafkajs')

function makeKafka (bootstrap) {
  return new Kafka({
    clientId: 'kbroker-compat-kafkajs',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    logCreator: () => ({ namespace, level, log }) => {
      process.stderr.write(`[${namespace}] ${JSON.stringify(log)}\n`)
    },
    retry: { retries: 3, initialRetryTime: 100 }
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

module.exports = { makeKafka, FAST_GROUP, describeError, expectError, withAdmin }
