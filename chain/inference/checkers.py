"""Whether anyone honest could check a pick's output (docs/design.md §3.3).

An inference's checks are owed by the epoch's members serving its model, its executor aside
(§6.2). A model that a single member serves therefore has nobody to check it: that member
could return anything for it and be paid, and the developer could not tell; nor is a model
better off whose servers are all one coalition, which checks its own. So once a network has
two members, the draw passes over a pick unless some other member declared the model when
the draw-weights record was fixed (the same moment the epoch's members are fixed, from the
same participants), and the model's servers hold at least the record's share of the members'
weight: at a third, more than any coalition the protocol tolerates holds. A network of one
member has nobody to check anything, whatever the model, and its draws are left as they are:
that member is also the whole of consensus.
"""

from collections import defaultdict

from chain.scales import PPM
from inferchain_pb.inference.v1.inference_pb2 import DrawWeights


class ModelCheckers:
    """The members serving each model in one draw-weights record, and their weight."""

    def __init__(self, record: DrawWeights) -> None:
        self.share_ppm = record.min_server_share_ppm
        members = [entry for entry in record.weights if entry.weight]
        self._alone = len(members) < 2
        total = sum(entry.weight for entry in members)
        servers: dict[str, set[str]] = defaultdict(set)
        weight: dict[str, int] = defaultdict(int)
        for entry in members:
            for model_id in entry.model_ids:
                servers[model_id].add(entry.address)
                weight[model_id] += entry.weight
        self._servers = {model_id: frozenset(found) for model_id, found in servers.items()
                         if weight[model_id] * PPM >= record.min_server_share_ppm * total}

    def probed_models(self) -> list[str]:
        """The models whose draws a member's probe can reach, sorted: those two or more
        members serve with the record's share of the weight (an API-key request never draws
        its own agent while another can serve it, and a lone server checks nobody); none
        while the network has one member, which would only draw itself."""
        if self._alone:
            return []
        return sorted(m for m, servers in self._servers.items() if len(servers) > 1)

    def checkable(self, executor: str, model_id: str) -> bool:
        """Whether a member other than ``executor`` serves ``model_id`` and its servers hold
        the share of weight the record asks, or the network has no second member to ask."""
        if self._alone:
            return True
        servers = self._servers.get(model_id, frozenset())
        return len(servers) > (executor in servers)
