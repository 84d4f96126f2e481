import CairnIngest
import CairnService

await ServiceHost.run(name: "ingest", setup: IngestService.setup)
