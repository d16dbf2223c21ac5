from aidc_thermo.cli import main

raise SystemExit(main())
