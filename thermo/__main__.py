from thermo.cli import main

raise SystemExit(main())
