from django.contrib.auth import get_user_model


def staff_user_ensure(*, username: str, password: str) -> bool:
    """Make `username` a superuser with `password`, creating it if need be. True if created."""
    user, created = get_user_model().objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    return created


def staff_user_exists() -> bool:
    return get_user_model().objects.filter(is_staff=True, is_active=True).exists()
