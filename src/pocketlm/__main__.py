from pocketlm.cli import main

main()
