// One HTTP/1.1 request to a member's REST API over a /libp2p-http stream, made with js-libp2p
// (TCP, the private network keyed by the cluster secret, noise, yamux): a libp2p stack written
// independently of ours, as Go's ipfs-cluster-ctl uses go-libp2p's.
//
//   node libp2p-http-client.mjs <multiaddr ending in /p2p/<id>> <secret hex> <METHOD> <path> [user:password]
//
// Prints the raw HTTP response; exits 1 when no stream could be opened.
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { preSharedKey } from '@libp2p/pnet'
import { multiaddr } from '@multiformats/multiaddr'

const [address, secret, method, path, credentials] = process.argv.slice(2)
const swarmKey = new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${secret}`)
const node = await createLibp2p({
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  connectionProtector: preSharedKey({ psk: swarmKey }),
})
try {
  const stream = await node.dialProtocol(multiaddr(address), '/libp2p-http', {
    signal: AbortSignal.timeout(15000),
  })
  const auth = credentials ? `Authorization: Basic ${Buffer.from(credentials).toString('base64')}\r\n` : ''
  const request = `${method} ${path} HTTP/1.1\r\nHost: cluster\r\n${auth}Content-Length: 0\r\nConnection: close\r\n\r\n`
  await stream.sink([new TextEncoder().encode(request)])
  const chunks = []
  for await (const chunk of stream.source) chunks.push(chunk.subarray())
  process.stdout.write(Buffer.concat(chunks))
} catch (error) {
  console.error(`libp2p-http request failed: ${error.message}`)
  process.exitCode = 1
} finally {
  await node.stop()
}
