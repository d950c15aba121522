// A @platformatic/kafka member (groupProtocol 'consumer') that reads
// <topic> from the group's committed offsets and prints the values it got
// as one JSON array once <n> arrived (or after 30 s, with what it has).
//   node consume_committed.mjs <bootstrap> <topic> <group> <n>
import { Consumer, stringDeserializers } from '@platformatic/kafka'

const [bootstrap, topic, group, nText] = process.argv.slice(2)
const n = Number(nText)
const c = new Consumer({
  groupId: group,
  clientId: 'committed',
  bootstrapBrokers: [bootstrap],
  groupProtocol: 'consumer',
  rebalanceTimeout: 60000,
  deserializers: stringDeserializers
})
const got = []
const stream = await c.consume({ topics: [topic], mode: 'committed', fallbackMode: 'earliest' })
stream.on('error', e => {
  if (!String(e?.message).includes('Client is closed')) console.error(String(e))
})
stream.on('data', m => got.push(m.value))
const end = Date.now() + 30000
while (Date.now() < end && got.length < n) await new Promise(resolve => setTimeout(resolve, 100))
await new Promise(resolve => setTimeout(resolve, 500)) // anything beyond n would show
console.log(JSON.stringify(got))
await c.close()
process.exit(0)
