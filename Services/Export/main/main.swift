import CairnExport
import CairnService

await ServiceHost.run(name: "export", setup: ExportService.setup)
