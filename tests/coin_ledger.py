"""A coin audit for in-process chains: after every block, every coin is in some account, the
escrow account holds exactly all escrows plus all unsettled work, and supply moved only by
what the settlements minted and burned, the vote bonds burned and the forfeits of API-key
commitments burned (docs/design.md §3.2, §3.3, §6.5, §7.5)."""

from inference_net import Net

from chain.bank.keeper import BALANCE_PREFIX, SUPPLY_PREFIX
from chain.query import QueryError
from inferchain_pb.inference.v1 import query_pb2 as q


class Ledger:
    """Runs a net's blocks and checks after each one that coins are conserved."""

    def __init__(self, net: Net, epoch_length: int) -> None:
        self.net = net
        self.epoch_length = epoch_length
        self.supply = self.total_supply()
        self.settled: set[int] = set()
        self.heights_checked = 0

    def total_supply(self) -> int:
        state = self.net.app.store.begin_block()
        return int(state.get(SUPPLY_PREFIX + b"ninfer"))

    def burned(self) -> int:
        """What the last block burned outside settlements, from its events: vote bonds (at a
        reveal or when judged), the forfeits of API-key commitments no start took and the bonds
        of notices of passed picks no start returned."""
        block = self.net.last_block
        events = [*block.events, *(e for tx in block.tx_results for e in tx.events)]
        return sum(int(a.value) for e in events
                   if e.type in ("vote_bond_burned", "key_request_forfeited", "pass_bond_burned")
                   for a in e.attributes if a.key == "amount")

    def block(self, txs: list[bytes]) -> list:
        results = self.net.block(txs)
        state = self.net.app.store.begin_block()
        balances = sum(int(v) for k, v in state.iterate(BALANCE_PREFIX)
                       if k.endswith(b"/ninfer"))
        supply = self.total_supply()
        assert balances == supply, "every coin is in some account"
        self.net.assert_conserved()  # escrow account = escrows + unsettled work
        change = 0
        for epoch in range(self.net.height // self.epoch_length + 1):
            if epoch in self.settled:
                continue
            try:
                found = self.net.query("EpochSettlement",
                                       q.QueryEpochSettlementRequest(epoch=epoch)).settlement
            except QueryError:  # not settled yet
                continue
            assert found.height == self.net.height
            self.settled.add(epoch)
            change += found.minted - found.work_burned
        change -= self.burned()
        assert supply - self.supply == change, \
            "supply moves only by settlements, bond burns and forfeits"
        self.supply = supply
        self.heights_checked += 1
        return results
