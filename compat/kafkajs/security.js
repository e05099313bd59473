'use strict'
// kafkajs against one of kbroker's secured listeners. Usage:
//   node security.js '<json settings>'
// settings: {bootstrap, topic, group, ssl: {ca, cert?, key?} | null,
//            sasl: {mechanism, username, password} | {mechanism: "oauthbearer", token} | null,
//            expectFailure: bool}
// Prints one JSON line: what kafkajs observed (or the error it failed with).

const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')
const { FAST_GROUP, describeError } = require('./common')

async function main () {
  const s = JSON.parse(process.argv[2])
  const ssl = s.ssl
    ? {
        ca: [fs.readFileSync(s.ssl.ca)],
        ...(s.ssl.cert ? { cert: fs.readFileSync(s.ssl.cert), key: fs.readFileSync(s.ssl.key) } : {})
      }
    : false
  let sasl
  if (s.sasl && s.sasl.mechanism === 'oauthbearer') {
    sasl = { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: s.sasl.token }) }
  } else if (s.sasl) {
    sasl = s.sasl
  }
  const kafka = new Kafka({
    clientId: 'kbroker-compat-kafkajs',
    brokers: [s.bootstrap],
    ssl,
    sasl,
    logLevel: logLevel.NOTHING,
    retry: { retries: 2, initialRetryTime: 100 }
  })
  const admin = kafka.admin()
  if (s.expectFailure) {
    try {
      await admin.connect()
      await admin.listTopics()
      console.log(JSON.stringify({ connected: true }))
    } catch (err) {
      console.log(JSON.stringify({ failed: describeError(err) }))
    }
    await admin.disconnect()
    return
  }
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: s.topic, numPartitions: 1 }] })
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({
    topic: s.topic,
    messages: [0, 1, 2, 3, 4].map((i) => ({ value: `value-${i}` }))
  })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: s.group, ...FAST_GROUP })
  await consumer.connect()
  await consumer.subscribe({ topics: [s.topic], fromBeginning: true })
  const values = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out consuming')), 30000)
    consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        values.push(message.value.toString())
        if (values.length === 5) {
          await consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
          clearTimeout(timer)
          resolve()
        }
      }
    }).catch(reject)
  })
  await consumer.disconnect()
  const offsets = await admin.fetchOffsets({ groupId: s.group, topics: [s.topic] })
  await admin.disconnect()
  console.log(JSON.stringify({ values, committed: offsets[0].partitions[0].offset }))
}

main().catch((err) => {
  console.log(JSON.stringify({ error: describeError(err) }))
  process.exitCode = 1
})
