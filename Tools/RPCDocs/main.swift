import CairnMethods

// Prints docs/rpc.md; `make rpc-docs` writes it.
print(MethodCatalog.reference(), terminator: "")
