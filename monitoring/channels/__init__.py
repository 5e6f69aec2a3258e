"""Alert senders: one function per channel, each raising ``DeliveryFailed`` when it fails."""
