import CairnService
import CairnStorage

await ServiceHost.run(name: "storage", setup: StorageService.setup)
