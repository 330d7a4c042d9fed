print("headcount")
