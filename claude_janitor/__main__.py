from claude_janitor.cli.main import main

main()
