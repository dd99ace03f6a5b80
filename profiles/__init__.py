"""The shipped run profiles (TOML), installed as the package harness.profiles: `harness profiles` lists them."""
