"""HR: BambooHR change tracking (``bamboohr``) and HRIS export files (``hris-export``),
minimised by ``policies/hr_minimisation.yaml``; a BambooHR simulator for tests and the demo."""
