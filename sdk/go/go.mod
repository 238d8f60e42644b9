module github.com/lanthorn/lanthorn-go

go 1.19
