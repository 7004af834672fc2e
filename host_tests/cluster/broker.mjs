// One instance of a clustered MQTT broker: aedes on 127.0.0.1:PORT, sharing its messages
// (mqemitter-redis) and sessions, subscriptions and retained messages (aedes-persistence-redis)
// with every other instance on the same Redis. For host_tests/aedes_cluster.py.
//
//   node broker.mjs PORT REDIS_PORT ID     prints "listening PORT" once it accepts clients
import { createServer } from 'node:net'
import { Aedes } from 'aedes'
import mqemitterRedis from 'mqemitter-redis'
import persistenceRedis from 'aedes-persistence-redis'

const [port, redisPort, id] = process.argv.slice(2)
if (!port || !redisPort || !id) {
  console.error('usage: node broker.mjs PORT REDIS_PORT ID')
  process.exit(2)
}
const redis = { host: '127.0.0.1', port: Number(redisPort) }
const broker = await Aedes.createBroker({ id, mq: mqemitterRedis(redis), persistence: persistenceRedis(redis) })
const server = createServer(broker.handle)
server.on('error', (err) => { console.error('server error', err); process.exit(1) })
server.listen(Number(port), '127.0.0.1', () => console.log('listening', port))
