import CairnIdentity
import CairnService

await ServiceHost.run(name: "identity", setup: IdentityService.setup)
