"""The inference module's errors, codespace "inference", codes stable once released."""

from chain.errors import error_class

SPACE = "inference"
ParticipantExists = error_class("ParticipantExists", 2, SPACE)
ParticipantNotFound = error_class("ParticipantNotFound", 3, SPACE)
UnknownModel = error_class("UnknownModel", 4, SPACE)
InvalidPrompt = error_class("InvalidPrompt", 5, SPACE)
DuplicateStart = error_class("DuplicateStart", 6, SPACE)
DuplicateFinish = error_class("DuplicateFinish", 7, SPACE)
WrongExecutor = error_class("WrongExecutor", 8, SPACE)
BadSignature = error_class("BadSignature", 9, SPACE)
DrawMismatch = error_class("DrawMismatch", 10, SPACE)
ReplayedRequest = error_class("ReplayedRequest", 11, SPACE)
StaleRequest = error_class("StaleRequest", 12, SPACE)
InvalidArtifact = error_class("InvalidArtifact", 13, SPACE)
InvalidOutput = error_class("InvalidOutput", 14, SPACE)
InvalidParticipant = error_class("InvalidParticipant", 15, SPACE)
InferenceClosed = error_class("InferenceClosed", 16, SPACE)
NoAllowance = error_class("NoAllowance", 17, SPACE)
InvalidSampling = error_class("InvalidSampling", 18, SPACE)
UndeliveredRelay = error_class("UndeliveredRelay", 60, SPACE)
UnevidencedSkip = error_class("UnevidencedSkip", 61, SPACE)
# A served model's or a finish's dtype is not the model's registered serving dtype.
WrongServingDtype = error_class("WrongServingDtype", 70, SPACE)
