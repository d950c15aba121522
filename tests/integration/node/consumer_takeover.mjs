// One @platformatic/kafka member (groupProtocol 'consumer') that prints
// the partitions of <topic> it owns, as a JSON line each time they change,
// and exits once it has owned fewer than <all> and then all of them.
// Bounded: exits with status 2 after 90 s.
//   node consumer_takeover.mjs <bootstrap> <topic> <group> <all>
import { Consumer, stringDeserializers } from '@platformatic/kafka'

const [bootstrap, topic, group, allText] = process.argv.slice(2)
const all = Number(allText)
const c = new Consumer({
  groupId: group,
  clientId: 'takeover',
  bootstrapBrokers: [bootstrap],
  groupProtocol: 'consumer',
  rebalanceTimeout: 60000,
  deserializers: stringDeserializers
})
const stream = await c.consume({ topics: [topic], mode: 'earliest' })
stream.on('error', e => {
  if (!String(e?.message).includes('Client is closed')) console.error(String(e))
})
stream.on('data', () => {})
let last = ''
let sawFewer = false
const end = Date.now() + 90000
while (Date.now() < end) {
  const parts = []
  for (const a of c.assignments ?? []) {
    if (a.topic === topic) parts.push(...a.partitions)
  }
  parts.sort((x, y) => x - y)
  const now = JSON.stringify(parts)
  if (now !== last) {
    console.log(JSON.stringify({ owned: parts, t: Date.now() }))
    last = now
  }
  if (parts.length > 0 && parts.length < all) sawFewer = true
  if (sawFewer && parts.length === all) {
    await c.close()
    process.exit(0)
  }
  await new Promise(resolve => setTimeout(resolve, 100))
}
process.exit(2)
