from tap_hubfixture.tap import TapHubFixture

TapHubFixture.cli()
