"""NPI check digit: the Luhn algorithm over the prefix 80840 + the first nine digits (CMS's NPI
standard); the tenth digit is the check digit. `1234567893` is valid, `9999999999` is not."""

from __future__ import annotations


def check_digit(first_nine: str) -> int:
    total = 0
    # Double every second digit from the right, starting with the rightmost of the 14 digits.
    for position, char in enumerate(reversed("80840" + first_nine)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def is_valid_npi(value: object) -> bool:
    """Ten digits, first 1 or 2, right check digit."""
    npi = str(value).strip() if value is not None else ""
    return len(npi) == 10 and npi.isdigit() and npi[0] in "12" and check_digit(npi[:9]) == int(npi[9])
