//! Content added through the cluster (`/add`): where its blocks go and storing them there.

use super::*;

impl Cluster {
    /// Stores blocks on this member's daemon (as few `block/put` requests as the daemon allows);
    /// the first failure is returned.
    pub async fn put_blocks_locally(&self, blocks: Vec<WireBlock>) -> Result<(), ClusterError> {
        let count = blocks.len();
        let blocks = blocks.into_iter().map(|block| (block.cid, block.data.into())).collect();
        self.ipfs
            .block_put_many(blocks)
            .await
            .map_err(|e| ClusterError::Ipfs(format!("block/put of {count} blocks: {e}")))
    }

    /// The members whose daemons receive an upload's blocks (Go `BlockAllocate`): the pin's
    /// allocations for a placeholder CID (every member when pinned everywhere), or only this
    /// member with `local`.
    pub fn add_destinations(&self, options: &PinOptions, local: bool) -> Result<Vec<PeerId>, ClusterError> {
        if local {
            return Ok(vec![self.identity.peer_id]);
        }
        // The content's CID is not known before the upload is read: rank members for a random one.
        let mut seed = [0u8; 16];
        cluster_rt::fill_random(&mut seed);
        let placeholder = Cid::raw_sha256(&seed);
        let mut pin = self.prepare_pin(placeholder, options.clone(), None)?;
        let user_allocations = options.user_allocations.clone().unwrap_or_default();
        self.allocate(&mut pin, &user_allocations, None, &[])?;
        if pin.is_everywhere() {
            return Ok(self.member_peers());
        }
        Ok(pin.allocations)
    }

    /// Stores blocks on every destination's daemon at once; fails if any destination fails.
    pub async fn add_blocks(&self, destinations: &[PeerId], blocks: Vec<(Cid, Bytes)>) -> Result<(), ClusterError> {
        let wire: Vec<WireBlock> = blocks
            .into_iter()
            .map(|(cid, data)| WireBlock {
                cid,
                data: data.to_vec(),
            })
            .collect();
        let members = self.members();
        let destinations = destinations
            .iter()
            .map(|peer| {
                if *peer == self.identity.peer_id {
                    // This member, whether or not its own view of the membership lists it yet.
                    return Ok(self.me_member.clone());
                }
                members
                    .iter()
                    .find(|m| m.peer_id == *peer)
                    .cloned()
                    .ok_or(ClusterError::NotAMember { peer: *peer })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let here = destinations.iter().any(|m| m.peer_id == self.me_member.peer_id);
        let answers = self
            .ask_members(
                destinations,
                here.then(|| self.put_blocks_locally(wire.clone())),
                || RpcRequest::BlockPut(wire.clone()),
                self.config.ipfs.request_timeout,
                answer_of!(RpcResponse::BlockPut),
            )
            .await;
        for (member, answer) in answers {
            answer.and_then(|stored| stored).map_err(|e| match e {
                ClusterError::Ipfs(e) => ClusterError::Ipfs(format!("storing blocks on {}: {e}", member.peer_id)),
                other => other,
            })?;
        }
        Ok(())
    }

    /// Pins an added root, allocated first to the members that received its blocks.
    pub async fn add_pin(
        &self,
        root: Cid,
        mut options: PinOptions,
        destinations: Vec<PeerId>,
    ) -> Result<Pin, ClusterError> {
        options.user_allocations = Some(destinations);
        self.pin(root, options).await
    }
}
