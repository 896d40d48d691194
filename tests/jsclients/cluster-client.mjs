// Drives @nftstorage/ipfs-cluster (the REST client nft.storage and web3.storage use) against a
// running cluster: every method it has. Usage: node cluster-client.mjs <rest url> <user:pass>
// Prints one "ok <method>" line per call; any failure throws and exits non-zero.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Cluster } from '@nftstorage/ipfs-cluster'

const [url, credentials] = process.argv.slice(2)
const headers = { Authorization: 'Basic ' + Buffer.from(credentials).toString('base64') }
const cluster = new Cluster(url, { headers })
const ok = (what, detail = '') => console.log(`ok ${what} ${detail}`.trim())
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Without credentials the API refuses.
await assert.rejects(new Cluster(url).version(), /401/)
ok('auth refused without credentials')

const version = await cluster.version()
assert.equal(version, '1.1.6')
ok('version', version)

const info = await cluster.info()
assert.equal(typeof info.id, 'string')
assert.equal(info.clusterPeers.length, 3, JSON.stringify(info))
assert.equal(info.rpcProtocolVersion, '/ipfscluster/1.0/rpc')
ok('info', info.id)

const peers = await cluster.peerList()
assert.equal(peers.length, 3)
assert.ok(peers.every((p) => typeof p.id === 'string' && p.error === ''), JSON.stringify(peers))
ok('peerList', peers.length)

const added = await cluster.add(new Blob(['hello cluster from javascript']), {
  name: 'hello', replicationFactorMin: 1, replicationFactorMax: 2, metadata: { k: 'v' }
})
assert.match(added.cid, /^bafkrei/, JSON.stringify(added))
assert.equal(added.name, 'undefined')
ok('add', added.cid)

const named = await cluster.add(new File(['a named file'], 'named.txt'))
assert.equal(named.name, 'named.txt')
ok('add (named file)', named.cid)

const directory = await cluster.addDirectory([
  new File(['first'], 'a.txt'),
  new File(['second'], 'b.txt')
])
assert.deepEqual(directory.map((e) => e.name), ['a.txt', 'b.txt', ''], JSON.stringify(directory))
const directoryRoot = directory[2].cid
assert.match(directoryRoot, /^bafybei/)
ok('addDirectory', directoryRoot)

// A CARv1 with one raw block, built by hand: header {"roots":[cid],"version":1}, one section.
const data = new TextEncoder().encode('a block inside a CAR')
const digest = createHash('sha256').update(data).digest()
const cidBytes = Uint8Array.from([0x01, 0x55, 0x12, 0x20, ...digest])
const header = Uint8Array.from([
  0xa2, 0x65, ...new TextEncoder().encode('roots'), 0x81, 0xd8, 0x2a, 0x58, cidBytes.length + 1, 0x00,
  ...cidBytes, 0x67, ...new TextEncoder().encode('version'), 0x01
])
const car = Uint8Array.from([header.length, ...header, cidBytes.length + data.length, ...cidBytes, ...data])
const carAdded = await cluster.addCAR(new Blob([car]), { name: 'car' })
assert.match(carAdded.cid, /^bafkrei/)
ok('addCAR', carAdded.cid)

const target = named.cid
const expireAt = new Date(Date.now() + 3600e3)
const pinned = await cluster.pin(target, {
  name: 'n', replicationFactorMin: 1, replicationFactorMax: 3, expireAt, metadata: { a: 'b' }
})
assert.equal(pinned.cid, target)
assert.equal(pinned.name, 'n')
assert.equal(pinned.replicationFactorMin, 1)
assert.equal(pinned.metadata.a, 'b')
assert.ok(Math.abs(pinned.expireAt.getTime() - expireAt.getTime()) < 2000, String(pinned.expireAt))
ok('pin', pinned.allocations.length)

let status
for (let i = 0; i < 60; i++) {
  status = await cluster.status(target)
  if (Object.values(status.peerMap).some((p) => p.status === 'pinned')) break
  await sleep(500)
}
assert.equal(status.cid, target)
assert.equal(Object.keys(status.peerMap).length, 3)
assert.ok(Object.values(status.peerMap).some((p) => p.status === 'pinned'), JSON.stringify(status))
ok('status', JSON.stringify(Object.values(status.peerMap).map((p) => p.status)))

const local = await cluster.status(target, { local: true })
assert.equal(Object.keys(local.peerMap).length, 1)
ok('status (local)')

const all = await cluster.statusAll()
assert.ok(all.length >= 4, `statusAll: ${all.length}`)
const filtered = await cluster.statusAll({ filter: ['pinned'], cids: [target, directoryRoot] })
assert.deepEqual(filtered.map((s) => s.cid).sort(), [target, directoryRoot].sort())
ok('statusAll', all.length)

const allocation = await cluster.allocation(target)
assert.equal(allocation.cid, target)
assert.equal(allocation.name, 'n')
ok('allocation', allocation.allocations.length)

const recovered = await cluster.recover(target, { local: true })
assert.equal(recovered.cid, target)
ok('recover')

let names = []
for (let i = 0; i < 60 && !names.includes('freespace'); i++) {
  names = await cluster.metricNames()
  if (!names.includes('freespace')) await sleep(500)
}
assert.ok(names.includes('freespace'), JSON.stringify(names))
ok('metricNames', JSON.stringify(names))

const removed = await cluster.unpin(target)
assert.equal(removed.cid, target)
await assert.rejects(cluster.allocation(target), /404/)
ok('unpin')

// The CIDs the Rust side checks in the cluster's pinset.
console.log('pinned ' + [added.cid, directoryRoot, carAdded.cid].join(' '))
