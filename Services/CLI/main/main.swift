import CairnCLI

await CairnCommand.start()
