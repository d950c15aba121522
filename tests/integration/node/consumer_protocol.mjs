// Drives a KIP-848 consumer group through @platformatic/kafka
// (groupProtocol 'consumer') against one broker and prints what it saw as
// one JSON object. Steps: create a topic of 4 partitions, produce 40
// records, consumer A joins and must own all 4 partitions, B joins and the
// two must own 2 each (disjoint), every record is received, B leaves and A
// owns all 4 again. Every wait is bounded; a timeout exits with status 2.
//   node consumer_protocol.mjs <bootstrap> <topic> <group> [assignor]
import { Admin, Consumer, Producer, stringSerializers, stringDeserializers } from '@platformatic/kafka'

const [bootstrap, topic, group, assignor] = process.argv.slice(2)
const brokers = [bootstrap]
const out = { steps: [] }
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function owned (c) {
  const parts = []
  for (const a of c.assignments ?? []) {
    if (a.topic === topic) parts.push(...a.partitions)
  }
  return parts.sort((x, y) => x - y)
}

async function waitFor (what, pred, ms = 30000) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (pred()) return
    await sleep(100)
  }
  out.timeout = what
  console.log(JSON.stringify(out))
  process.exit(2)
}

function consumer (name) {
  const opts = {
    groupId: group,
    clientId: name,
    bootstrapBrokers: brokers,
    groupProtocol: 'consumer',
    rebalanceTimeout: 60000,
    deserializers: stringDeserializers
  }
  if (assignor) opts.groupRemoteAssignor = assignor
  return new Consumer(opts)
}

const admin = new Admin({ clientId: 'admin', bootstrapBrokers: brokers })
await admin.createTopics({ topics: [topic], partitions: 4, replicas: 1 })
await admin.close()

const producer = new Producer({ clientId: 'producer', bootstrapBrokers: brokers, serializers: stringSerializers })
for (let i = 0; i < 40; i++) {
  await producer.send({ messages: [{ topic, key: 'k' + i, value: 'v' + i, partition: i % 4 }] })
}
await producer.close()

const received = new Map()
function collect (stream, name) {
  stream.on('data', m => {
    received.set(m.key, (received.get(m.key) ?? []).concat([name]))
  })
  // A fetch in flight when its consumer closes fails with "Client is
  // closed"; anything else is worth seeing.
  stream.on('error', e => {
    if (!String(e?.message).includes('Client is closed')) console.error(name + ': ' + e)
  })
}

const a = consumer('a')
collect(await a.consume({ topics: [topic], mode: 'earliest', autocommit: 100 }), 'a')
await waitFor('a owns 4', () => owned(a).length === 4)
out.steps.push({ a: owned(a) })

const b = consumer('b')
collect(await b.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest', autocommit: 100 }), 'b')
await waitFor('a and b own 2 each', () => owned(a).length === 2 && owned(b).length === 2)
out.steps.push({ a: owned(a), b: owned(b) })

await waitFor('40 records', () => received.size === 40)
out.received = received.size

await b.close()
await waitFor('a owns 4 again', () => owned(a).length === 4)
out.steps.push({ a: owned(a) })
await a.close()
console.log(JSON.stringify(out))
process.exit(0)
