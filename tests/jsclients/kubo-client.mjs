// Drives kubo-rpc-client (the client of the `ipfs` HTTP API) against the cluster's IPFS proxy.
// Usage: node kubo-client.mjs <proxy url>. Prints "ok ..." lines and, last, the added CID.
import assert from 'node:assert/strict'
import { create } from 'kubo-rpc-client'

const ipfs = create({ url: process.argv[2] + '/api/v0' })
const ok = (what, detail = '') => console.log(`ok ${what} ${detail}`.trim())

const version = await ipfs.version()
assert.equal(typeof version.version, 'string')
ok('version (forwarded to the daemon)', version.version)

const added = await ipfs.add('hello through the cluster proxy', { cidVersion: 1, rawLeaves: true })
const cid = added.cid.toString()
assert.match(cid, /^bafkrei/)
ok('add', cid)

const listed = []
for await (const pin of ipfs.pin.ls({ type: 'recursive' })) listed.push(pin.cid.toString())
assert.ok(listed.includes(cid), JSON.stringify(listed))
ok('pin.ls', listed.length)

const other = await ipfs.add('another file', { cidVersion: 1, rawLeaves: true, pin: false })
const otherCid = other.cid.toString()
const pinnedCid = await ipfs.pin.add(other.cid)
assert.equal(pinnedCid.toString(), otherCid)
ok('pin.add', otherCid)

const one = []
for await (const pin of ipfs.pin.ls({ paths: [other.cid] })) one.push(pin.cid.toString())
assert.deepEqual(one, [otherCid])
ok('pin.ls (path)')

const removed = await ipfs.pin.rm(other.cid)
assert.equal(removed.toString(), otherCid)
ok('pin.rm')

const stat = await ipfs.repo.stat()
assert.ok(stat.storageMax > 0n, String(stat.storageMax))
ok('repo.stat', String(stat.repoSize))

console.log(`pinned ${cid}`)
console.log(`unpinned ${otherCid}`)
