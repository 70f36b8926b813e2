"""The gov module's errors, codespace "gov", codes stable once released."""

from chain.errors import error_class

SPACE = "gov"
InvalidProposal = error_class("InvalidProposal", 2, SPACE)
InvalidContent = error_class("InvalidContent", 3, SPACE)
DepositTooSmall = error_class("DepositTooSmall", 4, SPACE)
ProposalNotFound = error_class("ProposalNotFound", 5, SPACE)
NotDepositPeriod = error_class("NotDepositPeriod", 6, SPACE)
NotVotingPeriod = error_class("NotVotingPeriod", 7, SPACE)
NoVotingPower = error_class("NoVotingPower", 8, SPACE)
InvalidVote = error_class("InvalidVote", 9, SPACE)
