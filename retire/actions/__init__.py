"""What `retire` changes on disk, on the user's order: moving safe versions to an archive and back."""
