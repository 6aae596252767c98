pytest_plugins = ["tests.fake_kaggle"]
