from oisp_sensor.cli.main import main

main()
