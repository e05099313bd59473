#!/usr/bin/env node
// kafkajs as the shared compat scenarios drive it: `node driver.js BOOTSTRAP`, then one JSON
// request a line on stdin ({"op": ..., ...}), one JSON answer a line on stdout ({"result": ...}
// or {"error": {...}} with kafkajs's error type and code). compat/adapters/kafkajs.py speaks
// it; the scenarios themselves are Python (compat/record_scenarios.py). Keys, values and
// header values travel as base64. kafkajs's own logs go to stderr.
'use strict'

const readline = require('readline')
const { CompressionTypes, ConfigResourceTypes, Partitioners } = require('kafkajs')
const common = require('./common')

const { makeKafka, FAST_GROUP, consumeUntilDone, describeError, expectError } = common

const [bootstrap] = process.argv.slice(2)
const DEADLINE_MS = 40000 // one request; the test fails with this rather than hang

const kafka = makeKafka(bootstrap)
const withAdmin = (fn) => common.withAdmin(kafka, fn)
const CODECS = { gzip: CompressionTypes.GZIP }

const b64 = (buf) => (buf === null || buf === undefined ? null : Buffer.from(buf).toString('base64'))
const unb64 = (text) => (text === null || text === undefined ? null : Buffer.from(text, 'base64'))

let groupCounter = 0
let memberCounter = 0
const members = {}
let producerCounter = 0
const producers = {}

async function flushQueue (tx) {
  const byTopic = {}
  for (const { topic, value } of tx.queue) (byTopic[topic] = byTopic[topic] || []).push({ value })
  tx.queue = []
  for (const [topic, messages] of Object.entries(byTopic)) await tx.txn.send({ topic, messages })
}

const OPS = {
  async createTopic ({ topic, partitions, configs }) {
    const configEntries = Object.entries(configs || {}).map(([name, value]) => ({ name, value }))
    await withAdmin((admin) => admin.createTopics({
      topics: [{ topic, numPartitions: partitions, configEntries }]
    }))
    return null
  },

  // Every record in one producer.send(). A record without a partition goes where kafkajs's
  // DefaultPartitioner puts it; the answer predicts that partition with the same partitioner
  // (the scenario checks the consumed records against Java's murmur2), and numbers each
  // record from its partition's base offset in the ProduceResponse.
  async produce ({ topic, records, acks, compression }) {
    const messages = records.map((r) => {
      const m = { value: unb64(r.value) }
      if (r.key !== null) m.key = unb64(r.key)
      if (r.partition !== null) m.partition = r.partition
      if (r.timestamp !== null) m.timestamp = String(r.timestamp)
      if (r.headers.length) {
        m.headers = {}
        for (const [k, v] of r.headers) {
          const value = unb64(v)
          m.headers[k] = m.headers[k] === undefined ? value : [].concat(m.headers[k], [value])
        }
      }
      return m
    })
    const partitionMetadata = await withAdmin(async (admin) => {
      const meta = await admin.fetchTopicMetadata({ topics: [topic] })
      return meta.topics[0].partitions
    })
    const partitioner = Partitioners.DefaultPartitioner()
    const chosen = messages.map((m) => (m.partition !== undefined
      ? m.partition
      : partitioner({ topic, partitionMetadata, message: m })))
    const producer = kafka.producer()
    await producer.connect()
    let metadata
    try {
      metadata = await producer.send({ topic, acks, compression: CODECS[compression], messages })
    } catch (err) {
      return { refused: describeError(err) }
    } finally {
      await producer.disconnect()
    }
    const byPartition = Object.fromEntries(metadata.map((m) => [m.partition, m]))
    const seen = {}
    return {
      sent: chosen.map((partition) => {
        const m = byPartition[partition]
        const index = seen[partition] || 0
        seen[partition] = index + 1
        const appended = m && m.logAppendTime !== '-1' ? Number(m.logAppendTime) : null
        return { partition, offset: m ? Number(m.baseOffset) + index : -1, timestamp: appended }
      })
    }
  },

  // kafkajs consumes only through groups (it has no assign()): a fresh group reads every
  // partition from the beginning (or, with seek, partition 0 from there) until `count`
  // records arrived, then leaves.
  async read ({ topic, count, seek }) {
    const consumer = kafka.consumer({ groupId: `read-${process.pid}-${groupCounter++}`, ...FAST_GROUP })
    const records = []
    await consumeUntilDone(consumer, { topics: [topic], fromBeginning: true }, (done) => ({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const headers = []
        for (const [k, v] of Object.entries(message.headers || {})) {
          for (const one of [].concat(v)) headers.push([k, b64(one)])
        }
        records.push({
          partition,
          offset: Number(message.offset),
          key: b64(message.key),
          value: b64(message.value),
          headers,
          timestamp: Number(message.timestamp),
          timestampType: message.batchContext.timestampType
        })
        if (records.length >= count) done()
      }
    }), () => {
      if (seek !== null) consumer.seek({ topic, partition: 0, offset: String(seek) })
    })
    return records
  },

  async partitions ({ topic }) {
    const meta = await withAdmin((admin) => admin.fetchTopicMetadata({ topics: [topic] }))
    return meta.topics[0].partitions.map((p) => p.partitionId).sort((a, b) => a - b)
  },

  async topics () {
    return withAdmin((admin) => admin.listTopics())
  },

  // Admin calls that may fail answer {error} with kafkajs's error, or {error: null}.
  async createPartitions ({ topic, count }) {
    return withAdmin(async (admin) => ({
      error: await expectError(admin.createPartitions({ topicPartitions: [{ topic, count }] }))
    }))
  },

  async deleteTopic ({ topic }) {
    return withAdmin(async (admin) => ({
      error: await expectError(admin.deleteTopics({ topics: [topic] }))
    }))
  },

  // DeleteRecords of one partition before `before`. deleteTopicRecords resolves to nothing
  // (no low watermark), and looks the leader up in metadata it does not load itself.
  async deleteRecords ({ topic, partition, before }) {
    return withAdmin(async (admin) => {
      await admin.fetchTopicMetadata({ topics: [topic] })
      const partitions = [{ partition, offset: String(before) }]
      return { error: await expectError(admin.deleteTopicRecords({ topic, partitions })) }
    })
  },

  // Every config of `topic`: name -> {value, isDefault, source} (kafkajs's configSource).
  async topicConfigs ({ topic }) {
    const described = await withAdmin((admin) => admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }]
    }))
    return Object.fromEntries(described.resources[0].configEntries.map((e) => [
      e.configName, { value: e.configValue, isDefault: e.isDefault, source: e.configSource }]))
  },

  // A group member that consumes in the background until closed; memberState says what it
  // has read and owns so far. Offsets are committed only when asked (memberCommit).
  async memberStart ({ topic, group }) {
    const id = `m${memberCounter++}`
    const consumer = kafka.consumer({ groupId: group, ...FAST_GROUP })
    const member = { consumer, values: [], assignment: [], next: {} }
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      member.assignment = payload.memberAssignment[topic] || []
    })
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        member.values.push(b64(message.value))
        member.next[partition] = String(Number(message.offset) + 1)
      }
    })
    members[id] = member
    return id
  },

  async memberState ({ id }) {
    return { values: members[id].values, assignment: members[id].assignment }
  },

  async memberCommit ({ id, topic }) {
    const { consumer, next } = members[id]
    await consumer.commitOffsets(Object.entries(next).map(([partition, offset]) => (
      { topic, partition: Number(partition), offset })))
    return null
  },

  async memberClose ({ id }) {
    await members[id].consumer.disconnect() // LeaveGroup
    delete members[id]
    return null
  },

  async setOffsets ({ group, topic, offsets }) {
    await withAdmin((admin) => admin.setOffsets({
      groupId: group,
      topic,
      partitions: Object.entries(offsets).map(([partition, offset]) => (
        { partition: Number(partition), offset: String(offset) }))
    }))
    return null
  },

  // The group's committed offsets (OffsetFetch): partition -> offset.
  async committed ({ group, topic }) {
    const [entry] = await withAdmin((admin) => admin.fetchOffsets({ groupId: group, topics: [topic] }))
    return Object.fromEntries(entry.partitions.map((p) => [p.partition, Number(p.offset)]))
  },

  async describeGroup ({ group }) {
    return withAdmin(async (admin) => {
      const { groups } = await admin.listGroups()
      const described = await admin.describeGroups([group])
      return {
        listed: groups.some((g) => g.groupId === group),
        state: described.groups[0].state,
        members: described.groups[0].members.length
      }
    })
  },

  // A transactional producer (idempotent, one request in flight, as kafkajs requires);
  // txSend only queues, txFlush sends the queue within the open transaction.
  async txStart ({ tid }) {
    const id = `p${producerCounter++}`
    const producer = kafka.producer({ transactionalId: tid, idempotent: true, maxInFlightRequests: 1 })
    await producer.connect() // InitProducerId
    producers[id] = { producer, txn: null, queue: [] }
    return id
  },

  async txBegin ({ id }) {
    producers[id].txn = await producers[id].producer.transaction()
    return null
  },

  async txSend ({ id, topic, value }) {
    producers[id].queue.push({ topic, value: unb64(value) })
    return null
  },

  async txFlush ({ id }) {
    await flushQueue(producers[id])
    return null
  },

  async txCommit ({ id }) {
    await flushQueue(producers[id])
    await producers[id].txn.commit()
    return null
  },

  async txAbort ({ id }) {
    await flushQueue(producers[id])
    await producers[id].txn.abort()
    return null
  },

  // Commit where the producer must be fenced: kafkajs's error, or null if the commit worked.
  async txCommitFenced ({ id }) {
    return expectError(producers[id].txn.commit())
  },

  async txClose ({ id }) {
    await producers[id].producer.disconnect()
    delete producers[id]
    return null
  },

  // Every value of partition 0 readable at `isolation`, up to the end offset: a fresh group
  // reads from the beginning until a processed batch (records, or only aborted / control
  // records, which kafkajs skips but still reports) ends at the high watermark.
  async readAll ({ topic, isolation }) {
    const offsets = await withAdmin((admin) => admin.fetchTopicOffsets(topic))
    if (offsets.every((o) => o.high === '0')) return []
    const consumer = kafka.consumer({
      groupId: `read-${process.pid}-${groupCounter++}`,
      readUncommitted: isolation === 'read_uncommitted',
      ...FAST_GROUP
    })
    const values = []
    await consumeUntilDone(consumer, { topics: [topic], fromBeginning: true }, (done) => {
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
        if (Number(payload.lastOffset) + 1 >= Number(payload.highWatermark)) done()
      })
      return {
        autoCommit: false,
        eachMessage: async ({ message }) => { values.push(b64(message.value)) }
      }
    })
    return values
  },

  // Consume `src` (read_committed) and, one transaction per batch, write b"x" + value to
  // `dst` with the batch's offsets committed in the same transaction (sendOffsets:
  // AddOffsetsToTxn + TxnOffsetCommit); [records seen, the group's committed offset].
  async transform ({ src, dst, group, tid, count }) {
    const producer = kafka.producer({ transactionalId: tid, idempotent: true, maxInFlightRequests: 1 })
    await producer.connect()
    const consumer = kafka.consumer({ groupId: group, ...FAST_GROUP })
    let seen = 0
    try {
      await consumeUntilDone(consumer, { topics: [src], fromBeginning: true }, (done) => ({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          if (batch.messages.length === 0) return
          const txn = await producer.transaction()
          await txn.send({
            topic: dst,
            messages: batch.messages.map((m) => ({ value: Buffer.concat([Buffer.from('x'), m.value]) }))
          })
          const last = batch.messages[batch.messages.length - 1]
          await txn.sendOffsets({
            consumerGroupId: group,
            topics: [{
              topic: src,
              partitions: [{ partition: batch.partition, offset: String(Number(last.offset) + 1) }]
            }]
          })
          await txn.commit()
          seen += batch.messages.length
          if (seen >= count) done()
        }
      }))
    } finally {
      await producer.disconnect()
    }
    const [entry] = await withAdmin((admin) => admin.fetchOffsets({ groupId: group, topics: [src] }))
    return [seen, Number(entry.partitions.find((p) => p.partition === 0).offset)]
  },

  async offsets ({ topic, partition }) {
    const offsets = await withAdmin((admin) => admin.fetchTopicOffsets(topic))
    const p = offsets.find((o) => o.partition === partition)
    return [Number(p.low), Number(p.high)]
  }
}

const lines = readline.createInterface({ input: process.stdin })
let queue = Promise.resolve()
lines.on('line', (line) => {
  // One request at a time, answered in order.
  queue = queue.then(async () => {
    let answer
    try {
      const request = JSON.parse(line)
      const fn = OPS[request.op]
      if (!fn) throw new Error(`unknown op ${request.op}`)
      let timer
      const late = new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`${request.op} not done within ${DEADLINE_MS} ms`)), DEADLINE_MS)
      })
      try {
        answer = { result: await Promise.race([fn(request), late]) }
      } finally {
        clearTimeout(timer)
      }
    } catch (err) {
      answer = { error: describeError(err) }
    }
    process.stdout.write(JSON.stringify(answer) + '\n')
  })
})
lines.on('close', () => { queue.then(() => process.exit(0)) })
