import Foundation
import MTLModelCLI

// A write past RLIMIT_FSIZE must fail with EFBIG and a clear error, not kill the process
// with SIGXFSZ (whose default action would also leave the temporary file behind).
signal(SIGXFSZ, SIG_IGN)
exit(MTLModelCommand.run(Array(CommandLine.arguments.dropFirst())))
