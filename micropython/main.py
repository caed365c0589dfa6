import boardnet_serve
boardnet_serve.main()
