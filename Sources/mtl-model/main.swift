import Foundation
import MTLModelCLI

exit(MTLModelCommand.run(Array(CommandLine.arguments.dropFirst())))
