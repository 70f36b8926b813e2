"""The epochs module's errors, codespace "epochs", codes stable once released."""

from chain.errors import error_class

SPACE = "epochs"
NotParticipant = error_class("NotParticipant", 2, SPACE)
WindowClosed = error_class("WindowClosed", 3, SPACE)
DuplicateNonce = error_class("DuplicateNonce", 4, SPACE)
AboveTarget = error_class("AboveTarget", 5, SPACE)
NotAllowed = error_class("NotAllowed", 6, SPACE)
NoSubmission = error_class("NoSubmission", 7, SPACE)
DuplicateVerdict = error_class("DuplicateVerdict", 8, SPACE)
BadBatch = error_class("BadBatch", 9, SPACE)
