// @platformatic/kafka's transactional producer against Sluice: one
// transaction committed, one aborted, one committed. Prints "ok".
//   node platformatic_txn.mjs <bootstrap> <topic>
import { Producer, stringSerializers } from '@platformatic/kafka'

const [bootstrap, topic] = process.argv.slice(2)
const p = new Producer({
  clientId: 'platformatic-txn',
  bootstrapBrokers: [bootstrap],
  idempotent: true,
  transactionalId: 'platformatic-txn',
  serializers: stringSerializers
})
for (const [values, commit] of [[['p-1', 'p-2'], true], [['p-dropped'], false], [['p-3'], true]]) {
  const tx = await p.beginTransaction()
  await tx.send({ messages: values.map(value => ({ topic, value, partition: 0 })) })
  if (commit) await tx.commit()
  else await tx.abort()
}
await p.close()
console.log('ok')
process.exit(0)
