import CairnSupervisor

await SupervisorCommand.start()
