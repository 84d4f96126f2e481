import CairnConsole
import CairnService

await ServiceHost.run(name: "reporting", setup: ConsoleService.setup)
