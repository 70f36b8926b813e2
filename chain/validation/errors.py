"""The validation module's errors, codespace "validation", codes stable once released."""

from chain.errors import error_class

SPACE = "validation"
NotParticipant = error_class("NotParticipant", 2, SPACE)
BadEpoch = error_class("BadEpoch", 3, SPACE)
SeedCommitted = error_class("SeedCommitted", 4, SPACE)
BadSeed = error_class("BadSeed", 5, SPACE)
TaskNotFound = error_class("TaskNotFound", 6, SPACE)
NotAllowed = error_class("NotAllowed", 7, SPACE)
DuplicateValidation = error_class("DuplicateValidation", 8, SPACE)
WindowClosed = error_class("WindowClosed", 9, SPACE)
BadFigures = error_class("BadFigures", 10, SPACE)
BadSignature = error_class("BadSignature", 11, SPACE)
BadCanary = error_class("BadCanary", 12, SPACE)
BadSeal = error_class("BadSeal", 13, SPACE)
NoVoteBond = error_class("NoVoteBond", 60, SPACE)
