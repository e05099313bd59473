#!/usr/bin/env node
// kafkajs scenarios of its own for compat/test_kafkajs.py: `node scenarios.js SCENARIO BOOTSTRAP
// TOPIC` (the scenarios shared with the other clients drive kafkajs through driver.js instead).
// Each scenario drives kafkajs against the broker and prints ONE JSON line on stdout with what
// it observed; the Python test asserts on it. kafkajs's own logs go to stderr. Any error
// prints {"error": {...}} with kafkajs's error type and exits 1, so the test shows the
// client's exact error.
'use strict'

const { ConfigResourceTypes } = require('kafkajs')
const common = require('./common')

const { makeKafka, FAST_GROUP, consumeUntilDone, expectError, runScenario } = common

const [scenario, bootstrap, topic] = process.argv.slice(2)
const DEADLINE_MS = 40000

const kafka = makeKafka(bootstrap)
const withAdmin = (fn) => common.withAdmin(kafka, fn)

async function produce (messages, { acks = -1 } = {}) {
  const producer = kafka.producer()
  await producer.connect()
  try {
    return await producer.send({ topic, acks, messages })
  } finally {
    await producer.disconnect()
  }
}

// Consume `count` records as a member of `groupId`, then leave the group (disconnect).
async function consumeGroup (groupId, count, { fromBeginning = true, seekTo = null } = {}) {
  const consumer = kafka.consumer({ groupId, ...FAST_GROUP })
  const records = []
  // Leaving the group (disconnect) commits what eachMessage resolved, then LeaveGroup.
  await consumeUntilDone(consumer, { topics: [topic], fromBeginning }, (done) => ({
    eachMessage: async ({ partition, message }) => {
      records.push({
        partition,
        offset: Number(message.offset),
        key: message.key === null ? null : message.key.toString(),
        value: message.value === null ? null : message.value.toString(),
        timestamp: Number(message.timestamp),
        headers: Object.fromEntries(Object.entries(message.headers || {})
          .map(([k, v]) => [k, v === null || v === undefined ? null : v.toString()]))
      })
      if (records.length >= count) done()
    }
  }), () => {
    if (seekTo !== null) consumer.seek({ topic, partition: 0, offset: String(seekTo) })
  })
  return records
}

// Every config of `topic`: name -> {value, isDefault, source} (kafkajs's configSource).
async function topicConfigs (admin) {
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }]
  })
  return Object.fromEntries(described.resources[0].configEntries.map((e) => [
    e.configName, { value: e.configValue, isDefault: e.isDefault, source: e.configSource }]))
}

const SCENARIOS = {
  async bootstrap () {
    return withAdmin(async (admin) => {
      const cluster = await admin.describeCluster()
      const created = await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] })
      const meta = await admin.fetchTopicMetadata({ topics: [topic] })
      return {
        cluster,
        created,
        partitions: meta.topics[0].partitions.map((p) => ({ id: p.partitionId, leader: p.leader }))
      }
    })
  },

  async create_topic_with_configs () {
    return withAdmin(async (admin) => {
      const created = await admin.createTopics({
        topics: [{
          topic,
          numPartitions: 3,
          configEntries: [
            { name: 'retention.ms', value: '3600000' },
            { name: 'cleanup.policy', value: 'compact' }
          ]
        }]
      })
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }]
      })
      const configs = Object.fromEntries(described.resources[0].configEntries
        .map((e) => [e.configName, { value: e.configValue, isDefault: e.isDefault }]))
      // kafkajs answers false (not an error) for a topic that already exists.
      const again = await admin.createTopics({ topics: [{ topic }] })
      const badConfig = await expectError(admin.createTopics({
        topics: [{ topic: topic + '.bad', configEntries: [{ name: 'retention.ms', value: 'x' }] }]
      }))
      return { created, configs, again, badConfig }
    })
  },

  async headers_and_create_time () {
    await produce([{
      key: 'k', value: 'v', partition: 0, timestamp: '1600000000123', headers: { h1: 'one', h2: '' }
    }])
    const records = await consumeGroup(`g-${topic}`, 1)
    return { records }
  },

  async consume_from_beginning () {
    const values = []
    for (let i = 0; i < 10; i++) values.push(`m${i}`)
    await produce(values.map((value) => ({ value, partition: 0 })))
    const offsets = await withAdmin((admin) => admin.fetchTopicOffsets(topic))
    const records = await consumeGroup(`g-${topic}`, 10)
    return { offsets, records }
  },

  // Legacy AlterConfigs replaces the whole override set: keys left out revert.
  async alter_configs_legacy () {
    return withAdmin(async (admin) => {
      await admin.createTopics({
        topics: [{ topic, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }]
      })
      await admin.alterConfigs({
        validateOnly: false,
        resources: [{
          type: ConfigResourceTypes.TOPIC,
          name: topic,
          configEntries: [
            { name: 'retention.ms', value: '90000' },
            { name: 'max.message.bytes', value: '20000' }
          ]
        }]
      })
      return { configs: await topicConfigs(admin) }
    })
  },

  // ListOffsets by timestamp, then consume from the offset found.
  async consume_from_timestamp () {
    await withAdmin((admin) => admin.createTopics({ topics: [{ topic }] }))
    const base = 1700000000000
    const messages = []
    for (let i = 0; i < 5; i++) {
      messages.push({ value: `t${i}`, partition: 0, timestamp: String(base + i * 1000) })
    }
    await produce(messages)
    const found = await withAdmin(async (admin) => ({
      mid: await admin.fetchTopicOffsetsByTimestamp(topic, base + 1500),
      before: await admin.fetchTopicOffsetsByTimestamp(topic, base - 1),
      // none at or after: kafkajs answers the high watermark for Kafka's -1
      after: await admin.fetchTopicOffsetsByTimestamp(topic, base + 60000)
    }))
    const records = await consumeGroup(`g-${topic}`, 3, {
      fromBeginning: false, seekTo: Number(found.mid[0].offset)
    })
    return { found, records }
  }
}

runScenario(SCENARIOS, scenario, DEADLINE_MS)
