import CairnReporting
import CairnService

await ServiceHost.run(name: "reporting", setup: ReportingService.setup)
