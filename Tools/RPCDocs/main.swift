import CairnConsole
import CairnCore
import CairnMethods
import CairnMetrics

// Prints docs/rpc.md (`make rpc-docs`), with `metrics` docs/metrics.md (also `make rpc-docs`), or
// with `openapi` docs/openapi.json (`make openapi`).
if CommandLine.arguments.dropFirst().first == "openapi" {
    print(OpenAPIDocument.build().prettyPrinted())
} else if CommandLine.arguments.dropFirst().first == "metrics" {
    print(CairnMetric.reference(), terminator: "")
} else {
    print(MethodCatalog.reference(), terminator: "")
}
