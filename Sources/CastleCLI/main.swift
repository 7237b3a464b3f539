print("castle")
