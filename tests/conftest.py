pytest_plugins = ["tests.fake_kaggle", "tests.notify_receiver"]
