import CairnConsole
import CairnCore
import CairnMethods

// Prints docs/rpc.md (`make rpc-docs`), or with `openapi` docs/openapi.json (`make openapi`).
if CommandLine.arguments.dropFirst().first == "openapi" {
    print(OpenAPIDocument.build().prettyPrinted())
} else {
    print(MethodCatalog.reference(), terminator: "")
}
