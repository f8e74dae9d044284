module tlsprog

go 1.20
