#!/usr/bin/env node
// kafkajs cluster scenarios for compat/test_cluster_kafkajs.py:
// `node cluster.js SCENARIO BOOTSTRAP TOPIC [ARG]`, BOOTSTRAP a comma-separated broker list.
// Prints ONE JSON line on stdout with what kafkajs observed (kafkajs's logs go to stderr);
// an error prints {"error": {...}} and exits 1.
'use strict'

const { consumeUntilDone, makeKafka, runScenario } = require('./common')

const [scenario, bootstrap, topic, arg] = process.argv.slice(2)
const DEADLINE_MS = 60000

// Enough patience to ride out a leader failover (6 s sessions) on its own retries.
const kafka = makeKafka(bootstrap, { retries: 30, initialRetryTime: 200, maxRetryTime: 2000 })

const SCENARIOS = {
  // CreateTopics: ARG partitions, replication factor 3.
  async create () {
    const admin = kafka.admin()
    await admin.connect()
    try {
      const created = await admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic, numPartitions: Number(arg), replicationFactor: 3 }]
      })
      return { created }
    } finally {
      await admin.disconnect()
    }
  },

  // What kafkajs's admin client sees of the cluster and the topic.
  async metadata () {
    const admin = kafka.admin()
    await admin.connect()
    try {
      const cluster = await admin.describeCluster()
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
      return {
        brokers: cluster.brokers.map((b) => b.nodeId).sort(),
        controller: cluster.controller,
        partitions: topics[0].partitions.map((p) => ({
          partition: p.partitionId, leader: p.leader, replicas: p.replicas, isr: p.isr
        }))
      }
    } finally {
      await admin.disconnect()
    }
  },

  // One record to each of ARG partitions (value "<tag>-p<partition>"), acks=1.
  async produce () {
    const [count, tag] = arg.split(':')
    const producer = kafka.producer()
    await producer.connect()
    try {
      const messages = []
      for (let p = 0; p < Number(count); p++) messages.push({ partition: p, value: `${tag}-p${p}` })
      const sent = await producer.send({ topic, acks: 1, messages })
      return { sent: sent.map((r) => ({ partition: r.partition, errorCode: r.errorCode })) }
    } finally {
      await producer.disconnect()
    }
  },

  // A fresh group reads from the beginning until it has ARG records, or (ARG "until:V")
  // until it has seen the value V.
  async consume () {
    const until = arg.startsWith('until:') ? arg.slice(6) : null
    const consumer = kafka.consumer({
      groupId: `${topic}-${Date.now()}`, sessionTimeout: 6000, heartbeatInterval: 500
    })
    const values = []
    await consumeUntilDone(consumer, { topics: [topic], fromBeginning: true }, (done) => ({
      eachMessage: async ({ message }) => {
        values.push(message.value.toString())
        if (until === null ? values.length >= Number(arg) : values.includes(until)) done()
      }
    }))
    return { values: values.sort() }
  }
}

runScenario(SCENARIOS, scenario, DEADLINE_MS)
