module notls

go 1.20
